"""Figures and tables from saved results (seaborn, Agg backend)."""
