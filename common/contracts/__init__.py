"""Contracts: the text of an uploaded file page by page (`text.py`) and the terms a model read
from it, kept only where their quoted evidence is on the page it names (`terms.py`)."""
