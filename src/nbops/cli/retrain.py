"""`nbops retrain NAME --data NEW`: run the notebook on new data, bundle the result, compare it
with the production bundle on held-out rows, and promote it when the gates pass."""
