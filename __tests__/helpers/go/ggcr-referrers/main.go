// ggcr-referrers lists the referrers of a manifest the way go-containerregistry's clients (crane, cosign,
// Trivy's --sbom-sources oci) see them: remote.Referrers reads the OCI 1.1 referrers API and, when the
// registry answers 404, the `sha256-<hex>` fallback tag. It is the independent OCI 1.1 client of the tests.
//
//	ggcr-referrers [--plain-http] [--artifact-type TYPE] [--username USER] REGISTRY/REPO@sha256:HEX
//
// The password for --username is read from $GGCR_PASSWORD, so it never shows in a process list.
// Prints the resulting image index as JSON on stdout; on failure, one line on stderr and exit status 1
// (2 for a usage error).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	plainHTTP := flag.Bool("plain-http", false, "speak plain HTTP to the registry (test registries on 127.0.0.1)")
	artifactType := flag.String("artifact-type", "", "keep only referrers of this artifactType (remote.WithFilter)")
	username := flag.String("username", "", "basic-auth user; the password comes from $GGCR_PASSWORD")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: ggcr-referrers [--plain-http] [--artifact-type TYPE] [--username USER] REGISTRY/REPO@sha256:HEX")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}

	var nameOptions []name.Option
	if *plainHTTP {
		nameOptions = append(nameOptions, name.Insecure)
	}
	subject, err := name.NewDigest(flag.Arg(0), nameOptions...)
	if err != nil {
		fail("ggcr-referrers: %q is not REGISTRY/REPO@sha256:HEX: %v", flag.Arg(0), err)
	}

	options := []remote.Option{remote.WithAuth(authn.Anonymous)}
	if *username != "" {
		options = []remote.Option{remote.WithAuth(&authn.Basic{Username: *username, Password: os.Getenv("GGCR_PASSWORD")})}
	}
	if *artifactType != "" {
		options = append(options, remote.WithFilter("artifactType", *artifactType))
	}

	index, err := remote.Referrers(subject, options...)
	if err != nil {
		fail("ggcr-referrers: referrers of %s: %v", subject, err)
	}
	out, err := json.Marshal(index)
	if err != nil {
		fail("ggcr-referrers: encoding the index: %v", err)
	}
	fmt.Println(string(out))
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
