"""Web: the aiohttp app for agents (screen pop, ticket form), QA (search, review) and supervisors (KPIs)."""
