// Starts GraphiQL on the portal's /api page. Operations go to /graphql with the session cookie and the
// session's CSRF token (read from the page), so nothing but this application's own files is loaded.
(function () {
  var root = document.getElementById("graphiql");
  if (!root || !window.GraphiQL || !window.React || !window.ReactDOM) {
    return;
  }
  var fetcher = window.GraphiQL.createFetcher({
    url: root.getAttribute("data-endpoint"),
    headers: { "X-CSRF-Token": root.getAttribute("data-csrf") },
  });
  var query = "# What is left this period, for the contracts you may see\n" +
    "query {\n  contracts(first: 50) {\n    edges { node {\n      reference\n      customer { name }\n" +
    "      entitlements { bucket unit periodEnd allowance consumed remaining expiresInDays }\n    } }\n" +
    "    pageInfo { hasNextPage endCursor }\n  }\n}\n";
  window.ReactDOM.createRoot(root).render(
    window.React.createElement(window.GraphiQL, { fetcher: fetcher, defaultQuery: query })
  );
})();
