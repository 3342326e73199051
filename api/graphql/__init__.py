"""The GraphQL API (Strawberry): types, inputs, queries, mutations, dataloaders and the schema."""
