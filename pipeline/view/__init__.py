"""`pipeline view`: a local web page to look at a dataset and fix its labels.

The parts, from the data up: `index` (a DuckDB index of samples.jsonl with `check`'s findings,
built once and cached), `images` (originals from files or packs, thumbnails cached on disk),
`inputs` (`--issues` and `--run`), `session` (one dataset's index, pending edits and Save as),
`app` (the JSON API and the page, `static/`), `server` (uvicorn on a bound socket). The command
in `pipeline/commands/view.py` builds a `Session` and calls `server.serve`. See docs/view.md.
"""
