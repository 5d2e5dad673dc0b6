"""XLIFF 2.0 export of one article variant for a translator's CAT tool, and import of the edited file.

The package works on plain records (XDocument and the others) and knows nothing of storage or HTTP. Its
modules: `model` (the records, constants and status mapping), `plan` (a segment laid out for export),
`export` (building the XML) and `importing` (reading an edited file back).

Layout of an export (XLIFF 2.0 core, `urn:oasis:names:tc:xliff:document:2.0`):

* `<xliff version="2.0" srcLang="en" trgLang="{variant}">` with one `<file id="f1"
  original="duiyi:article/{article_id}">`; the article title, when there is one, is a file-level note.
* One `<unit id="{block id}" name="{kind}">` per block and one `<segment id="{segment id}">` per
  sentence. The white space between two sentences of the source is an `<ignorable>`, so joining a
  unit's sources gives back the block's text exactly. `xml:space="preserve"` is set on a source or
  target whose white space matters (leading, trailing, runs, tabs or line breaks).
* Inline markup (an HTML link, Markdown `**`) is a paired code `<pc id="n" dataRefStart="dns"
  dataRefEnd="dne">` whose markup strings are in the unit's `<originalData>`, so the translator moves
  codes, never types markup. Codes whose ranges cross in the source cannot be `<pc>` (which must
  nest); that segment then uses `<sc>`/`<ec>` pairs for all of its codes. The target carries the same
  codes where the variant's text contains the same markup strings, properly paired; markup that
  cannot be paired is left in the target as plain text, which the translator sees and can fix.
  An HTML article's target (`XSegment.html`) holds text as text, as its source does: unescaped in
  the file, and escaped again on import (`import_xliff`'s `escape`); there a source markup string
  left unpaired by an edit is a standalone `<ph dataRef="…">`, so that the file imports unchanged.
  Characters that XML cannot carry (control characters) are `<cp hex="…"/>`.
* A glossary hit is `<mrk id="mK" type="term" ref="#gls=gK">` around the term in the source, and
  around the glossary's form in the target when it occurs there, each only where it nests with the
  codes. The Glossary module (`urn:oasis:names:tc:xliff:glossary:2.0`) inside the unit has a
  `<gls:glossEntry id="gK" ref="#mK">` per hit with the English term, the variant's form and the
  note. `#gls=gK` and `#mK` are XLIFF fragment identifiers relative to the unit (the `gls` selector
  names a Glossary module element; no prefix names a source inline element, `t=` a target one).
* What each segment was when exported (`XSegment.basis`: its version, status and the SHA-256 of its
  target) is a Metadata module group in its unit (`urn:oasis:names:tc:xliff:metadata:2.0`):
  `<mda:metaGroup category="duiyi:exported" appliesTo="target">` with `<mda:meta>` of the types
  segment, version, status and target-sha256. The import hands it back (`XEdit.basis`) so that the
  caller can tell the translator's changes from changes made in duiyi since the export.
* QA flags are unit notes: `<note category="duiyi:{code}" appliesTo="target">{segment id}: {reason}</note>`.

Status ↔ state. XLIFF has four states (initial, translated, reviewed, final) and a free `subState`:

=============  ==================================================  ==========================
duiyi status   exported as                                         why
=============  ==================================================  ==========================
draft          state="translated"                                  a machine or human draft
needs_review   state="translated" subState="duiyi:needs_review"    it has a target, so not
                                                                   "initial"; the subState
                                                                   keeps the flag visible
approved       state="final"                                       done; no further edits
=============  ==================================================  ==========================

On import: final or reviewed → approved (a reviewer's sign-off is what approval means here);
translated with subState duiyi:needs_review → needs_review (the flag was left as exported);
translated otherwise → draft; initial (also the schema's default when state is absent) →
needs_review, since a tool marks a segment initial to say that it still needs work.

Which variant a file is for is what its `trgLang` says (`variant_for`): the tag the export wrote,
in any case or with `_` for `-` (`zh-tw`, `zh_TW`), or that tag with the script its region implies
spelled out (`zh-Hant-TW` for zh-TW, `zh-Hant-HK` for zh-HK; CLDR's likely subtags), a form that
names no other variant. A tag with a region added to a script is not taken (`zh-Hant-TW` is never
zh-Hant, nor `zh-Hans-CN` zh-Hans): it would be a guess, and `zh-Hant-TW` would name two variants.
`import_xliff_for` imports a file into the one of the article's variants it names, which must be
the one asked for where the caller asks for one (XliffVariantError, with the article's variants,
otherwise); `import_xliff` into one known variant.

Import refuses (XliffError, a message for the translator) a file that is not XLIFF 2.0 (2.1 shares
the core namespace and is accepted; an XLIFF 1.2 file, whose target language is `target-language`,
is refused as such), that is for another article, that names no target language, one the article
has no variant for or another variant than the one asked for, that names a segment the article
does not have, or whose source text differs from the article's, or with a `<cp>` that is not a
character (a UTF-16 surrogate) or, outside a source, NUL, which cannot be stored; DTDs and
entities are refused by `safexml` before parsing. Every segment with a `<target>` gives an XEdit,
an empty target included (a translator may fold two English sentences into one Chinese one);
segments left out of the file, or without a target, are not edited. Codes in a target become the
markup strings of the unit's `<originalData>` again; a code whose data the unit does not define is
refused. An export record that is there but damaged (a field missing or malformed, or recorded
twice) is refused too: ignored, it would let the import overwrite newer edits.
"""

from service.interchange.xliff.export import export_xliff
from service.interchange.xliff.importing import XImport, import_xliff, import_xliff_for, variant_for
from service.interchange.xliff.model import (
    ACCEPTED_VERSIONS,
    BASIS_CATEGORY,
    GLOSSARY_NS,
    METADATA_NS,
    NEEDS_REVIEW_SUBSTATE,
    ORIGINAL_PREFIX,
    SOURCE_LANG,
    STATES,
    STATUS_TO_STATE,
    STATUSES,
    XLIFF_1_NS,
    XLIFF_NS,
    XML_NS,
    XBasis,
    XDocument,
    XEdit,
    XInline,
    XliffError,
    XliffVariantError,
    XSegment,
    XTerm,
    XUnit,
    state_for,
    status_for,
)

__all__ = [
    "ACCEPTED_VERSIONS",
    "BASIS_CATEGORY",
    "GLOSSARY_NS",
    "METADATA_NS",
    "NEEDS_REVIEW_SUBSTATE",
    "ORIGINAL_PREFIX",
    "SOURCE_LANG",
    "STATES",
    "STATUSES",
    "STATUS_TO_STATE",
    "XLIFF_1_NS",
    "XLIFF_NS",
    "XML_NS",
    "XBasis",
    "XDocument",
    "XEdit",
    "XImport",
    "XInline",
    "XSegment",
    "XTerm",
    "XUnit",
    "XliffError",
    "XliffVariantError",
    "export_xliff",
    "import_xliff",
    "import_xliff_for",
    "state_for",
    "status_for",
    "variant_for",
]
