"""The research centre's warehouse: versioned schema, idempotent loaders, dashboard views."""
