"""Reports and the dashboard: reads other packages' tables, read-only."""
