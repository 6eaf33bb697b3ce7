"""Task families: the sample/prediction contract, collate and predictions-file format."""
