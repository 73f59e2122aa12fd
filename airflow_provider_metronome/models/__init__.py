"""Data types of the provider: provider rules, the warehouse row contract, the sync report."""
