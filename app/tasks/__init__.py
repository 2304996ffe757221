"""Background work run by the arq worker (`python -m app worker`)."""
