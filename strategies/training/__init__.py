"""Full-fidelity training of one architecture (``optinas train``): settings, the resumable
run with its files (checkpoints, metrics.json, curves.html, model.py and weights.pt), and the
retraining of a study's Pareto front with the proxy-vs-final rank correlation."""
