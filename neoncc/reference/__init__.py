"""Host references: the model as written (before any pass), computed with a framework instead of ACL."""
