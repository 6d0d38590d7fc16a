"""The server's own knowledge: the index of its messages, search tools and /catchup (issue 23)."""
