"""Identity and access management: organisations, principals, roles, scopes, tokens, audit."""
