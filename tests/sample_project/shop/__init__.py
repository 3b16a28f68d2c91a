"""A small shop whose background jobs run on aioq: the sample user project of the tests."""
