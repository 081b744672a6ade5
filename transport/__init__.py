"""flashsale's HTTP transport (aiohttp)."""
