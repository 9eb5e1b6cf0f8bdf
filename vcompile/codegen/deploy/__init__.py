"""What leaves the compiler: the artifact's metadata trailer (`artifact`, read by
`vcompile.runtime`), the TVM runtime libraries a device needs (`runtime_libs`) and the
deployment bundle (`bundle`, rendered from `templates/`)."""
