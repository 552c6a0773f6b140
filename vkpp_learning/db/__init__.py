"""The repository database: SQLAlchemy models, the engine with its schema upgrades, and the store functions."""

from vkpp_learning.db.engine import Database, open_database

__all__ = ["Database", "open_database"]
