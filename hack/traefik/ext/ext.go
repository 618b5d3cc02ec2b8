// Package ext is a local stand-in for traefik's nested module
// github.com/traefik/traefik/dynamic/ext (pkg/config/dynamic/ext), which is a
// separate module in traefik's repository and therefore NOT included in the
// github.com/traefik/traefik/v3 module zip served by the Go module proxy.
// In the OSS tree it only holds empty extension structs.
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}

// RouterIng is a RouterIng extension for ingress provider annotations.
type RouterIng struct{}

// ToRouter converts RouterIng to a Router.
func (r RouterIng) ToRouter() Router { return Router{} }
