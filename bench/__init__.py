"""Load benchmarks: they print figures, they are not tests (`python -m bench`)."""
