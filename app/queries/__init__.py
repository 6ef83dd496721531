"""Read-side queries; routers call these and never write SQL themselves."""
