"""Contracts: a contract's record and file (`records.py`), the upload and the reading of its
terms by a model (`parsing.py`), the text of the file page by page (`text.py`), and the terms
read from it, kept only where their quoted evidence is on the page it names (`terms.py`)."""
