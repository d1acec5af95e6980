"""Results: the versioned on-disk schema (the one writer, the one reader) and the scores
computed from it."""
