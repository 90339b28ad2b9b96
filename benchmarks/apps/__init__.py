"""The apps the benchmark driver serves, identical for every server under test."""
