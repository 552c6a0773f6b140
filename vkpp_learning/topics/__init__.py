"""Topic modelling over stored passages: BERTopic fits, their mapping to the taxonomy, and views for the app.

Importing this package is light: BERTopic, UMAP, HDBSCAN and torch load only inside `topics.model`'s
functions, when a fit, a save, a load or an assignment runs.
"""
