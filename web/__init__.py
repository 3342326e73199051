"""The Entitle portal: server-rendered pages with htmx partials, on the same service layer as GraphQL."""
