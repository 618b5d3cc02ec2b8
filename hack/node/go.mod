module modeldeploy.io/hack/node

go 1.26.0
