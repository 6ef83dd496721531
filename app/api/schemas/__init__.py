"""The JSON the API answers with, one module per concept."""
