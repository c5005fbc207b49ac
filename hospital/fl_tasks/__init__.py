"""Code that runs inside NVFlare jobs: at the hospitals (clients) and at the research centre (server)."""
