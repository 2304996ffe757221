"""My Library: the patron web service of a Japanese public library."""
