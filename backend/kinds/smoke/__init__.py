"""`smoke`: a few seconds of real generation with the embedded model, end to end."""
