// ggcr-registry runs go-containerregistry's in-memory registry (pkg/registry) with its OCI 1.1 referrers
// API turned on: the tests' registry that serves GET /v2/<name>/referrers/<digest>, which Debian's
// docker-registry (distribution 2.8) does not. go-containerregistry's own cmd/registry leaves the API off.
//
//	ggcr-registry [--port N]
//
// Listens on 127.0.0.1 only (port 0, the default, lets the kernel choose), prints the address it listens on
// (`127.0.0.1:PORT`) as one line on stdout once it accepts connections, logs each request on stderr, and
// stops cleanly on SIGTERM or SIGINT. Contents live in memory and vanish with the process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: ggcr-registry [--port N]")
		os.Exit(2)
	}

	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ggcr-registry: cannot listen on 127.0.0.1:%d: %v\n", *port, err)
		os.Exit(1)
	}
	requestLog := log.New(os.Stderr, "", log.LstdFlags)
	server := &http.Server{
		Handler:           registry.New(registry.Logger(requestLog), registry.WithReferrersSupport(true)),
		ReadHeaderTimeout: 10 * time.Second,
	}

	stop, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	// The listener already accepts connections (they queue until Serve runs), so the caller may start now.
	fmt.Println(listener.Addr().String())

	select {
	case err := <-served:
		fmt.Fprintf(os.Stderr, "ggcr-registry: %v\n", err)
		os.Exit(1)
	case <-stop.Done():
	}
	shutdown, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := server.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(os.Stderr, "ggcr-registry: shutdown: %v\n", err)
		os.Exit(1)
	}
}
