"""The translators' review workspace, served under /review: server-rendered pages (Jinja2) with a
little JavaScript served by the app itself, so it works with no internet access."""
