"""leadgate: a GraphQL gateway (and REST mirror) over a lending pipeline's leads."""
