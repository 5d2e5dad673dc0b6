"""Article jobs: submission, the runners that translate them, review and approval, webhooks."""
