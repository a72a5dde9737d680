"""REST routes beside DICOMweb: health, and the domain APIs (rt, deid, ai, accounts)."""
