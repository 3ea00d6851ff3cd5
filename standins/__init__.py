"""Local stand-ins for the outside APIs CSCX calls: tests and the local stack use them, functions never import them."""
