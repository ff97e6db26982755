"""`nbops data list|gc|get`: the data snapshots runs keep (`track_data(..., snapshot=True)`)."""
