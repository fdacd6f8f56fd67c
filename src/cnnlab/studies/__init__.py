"""Studies: the comparisons people run by hand (learning rates, optimizers, models, transfer
modes, regularisation ladders), each as one command whose table says which differences are
real. ``stats`` holds the statistics, shared with ensembles and the app.
"""
