"""One module per stage: thin Click commands that parse options and call one library function."""
