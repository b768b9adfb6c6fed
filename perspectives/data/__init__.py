"""Data: question banks and prompt sets (bundled and user files), and loaders of the paper's
data sets (Yahoo! Answers Topics, Dolly 15k)."""
