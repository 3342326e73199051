"""Entitle: premium-support contracts, entitlements and SLAs run from program files."""
