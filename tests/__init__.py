"""flashsale's tests; they mirror the packages."""
