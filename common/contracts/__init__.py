"""Contracts: the text of an uploaded file page by page (`text.py`) and the terms a model read
from it (`terms.py`): each value read as people write it (`values.py`), in the shape one pydantic
model gives them and the model's tool schema is made from (`schema.py`), and kept only where its
quoted evidence is on the page it names (`evidence.py`)."""
