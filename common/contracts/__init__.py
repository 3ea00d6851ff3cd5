"""Contracts: a contract's record and file (`records.py`), the upload and the reading of its
terms by a model (`parsing.py`), the text of the file page by page (`text.py`), and the terms
read from it (`terms.py`): each value read as people write it (`values.py`), in the shape one
pydantic model gives them and the model's tool schema is made from (`schema.py`), and kept only
where its quoted evidence is on the page it names (`evidence.py`)."""
