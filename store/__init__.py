"""Persistence: SQLAlchemy models, Appendix C contract and validation, ticket numbers, export, migrations."""
