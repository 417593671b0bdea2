// groupcache_bench: the remote-hit workload of bench_cluster_load on
// golang/groupcache (Debian's golang-github-golang-groupcache-dev), for
// bench/compare/run.sh.
//
// groupcache allows one HTTPPool and one group of a name per process, so each
// node is a process of this binary. Nodes B and C run with -role node; node A
// runs with -role caller: it is a node too, and it also keeps -inflight
// requests in flight through its own group.Get for keys that node B owns,
// which is one HTTP round trip A -> B answered from B's main cache.
//
// The hot cache: groupcache copies 1 in 10 peer-loaded values into the
// caller's hot cache, after which that key is a local hit. Here node A's
// group has a cache budget of 0 bytes (-cache-bytes 0, the caller's default),
// and populateCache() returns at once for a group whose budget is 0, so A
// never keeps a copy and every Get is one hop; node A owns none of the
// measured keys, so its main cache is unused anyway. This is the same setup
// as distcache's hot_max_bytes = 0 on the caller. B keeps its budget
// (1 GiB) and serves every request from its main cache after the pre-load.
//
// The caller pre-loads every key once through B (B's getter runs once per
// key), then for each -inflight value warms up and measures, and prints one
// line per value:
//
//	RESULT system=groupcache inflight=N ops_per_s=... p50_us=... p99_us=...
//	       source_calls=... server_requests=...
//
// where source_calls and server_requests are the getter calls and peer
// requests node B counted during that measurement (read from B's /stats).
//
// Build (offline, GOPATH mode, as docs/performance.md says):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= go build -o groupcache_bench .
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang/groupcache"
	"github.com/golang/groupcache/consistenthash"
)

// groupcache's HTTPPool default: 50 points per peer on its hash ring.
const replicas = 50

var (
	role       = flag.String("role", "node", "node: serve only; caller: serve and run the load")
	self       = flag.String("self", "", "this node's base URL, e.g. http://127.0.0.1:9001")
	peersFlag  = flag.String("peers", "", "comma-separated base URLs of every node, self included")
	owner      = flag.String("owner", "", "caller: base URL of node B, which owns the measured keys")
	inflight   = flag.String("inflight", "1,16", "caller: comma-separated requests in flight")
	keysN      = flag.Int("keys", 10000, "caller: keys owned by B, chosen uniformly per request")
	seconds    = flag.Float64("seconds", 5, "caller: measured seconds per in-flight value")
	warmup     = flag.Float64("warmup", 1, "caller: warm-up seconds before each measurement")
	valueBytes = flag.Int("value-bytes", 100, "bytes per value the getter returns")
	cacheBytes = flag.Int64("cache-bytes", -1, "group budget; -1: 0 for the caller, 1 GiB for a node")
	maxIdle    = flag.Int("max-idle-per-host", 1024, "http.Transport MaxIdleConnsPerHost")
)

var sourceCalls atomic.Int64

type stats struct {
	SourceCalls    int64 `json:"source_calls"`
	ServerRequests int64 `json:"server_requests"`
	Gets           int64 `json:"gets"`
	PeerLoads      int64 `json:"peer_loads"`
	PeerErrors     int64 `json:"peer_errors"`
	CPUNanos       int64 `json:"cpu_ns"`
}

// processCPU is the CPU time this process's threads ran, in ns (the sum of
// /proc/self/task/*/schedstat; threads that ended are not counted).
func processCPU() int64 {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			if ns, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				sum += ns
			}
		}
	}
	return sum
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("groupcache_bench: ")
	if *self == "" || *peersFlag == "" {
		log.Fatal("-self and -peers are required")
	}
	peers := strings.Split(*peersFlag, ",")

	budget := *cacheBytes
	if budget < 0 {
		if *role == "caller" {
			budget = 0
		} else {
			budget = 1 << 30
		}
	}
	value := make([]byte, *valueBytes)
	for i := range value {
		value[i] = 'v'
	}
	group := groupcache.NewGroup("bench", budget, groupcache.GetterFunc(
		func(_ context.Context, key string, dest groupcache.Sink) error {
			sourceCalls.Add(1)
			v := append([]byte(nil), value...)
			copy(v, key)
			return dest.SetBytes(v)
		}))

	// Go's default transport keeps 2 idle connections per host: with 16 in
	// flight most requests would open a new connection.
	transport := &http.Transport{
		MaxIdleConns:        *maxIdle,
		MaxIdleConnsPerHost: *maxIdle,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	pool := groupcache.NewHTTPPoolOpts(*self, nil)
	pool.Transport = func(context.Context) http.RoundTripper { return transport } // before Set
	pool.Set(peers...)

	mux := http.NewServeMux()
	mux.Handle("/_groupcache/", pool)
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(stats{
			SourceCalls:    sourceCalls.Load(),
			ServerRequests: group.Stats.ServerRequests.Get(),
			Gets:           group.Stats.Gets.Get(),
			PeerLoads:      group.Stats.PeerLoads.Get(),
			PeerErrors:     group.Stats.PeerErrors.Get(),
			CPUNanos:       processCPU(),
		})
	})
	listen := strings.TrimPrefix(strings.TrimPrefix(*self, "http://"), "https://")
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Fatalf("listen %s: %v", listen, err)
	}
	server := &http.Server{Handler: mux}
	go func() {
		if err := server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatalf("serve: %v", err)
		}
	}()

	if *role == "node" {
		fmt.Printf("ready %s\n", *self)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = server.Shutdown(ctx)
		return
	}
	if *role != "caller" {
		log.Fatalf("-role: node or caller, got %q", *role)
	}
	if *owner == "" {
		log.Fatal("-owner is required with -role caller")
	}
	os.Exit(runCaller(group, peers))
}

func fetchStats(client *http.Client, base string) (stats, error) {
	var s stats
	res, err := client.Get(base + "/stats")
	if err != nil {
		return s, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s/stats: %s", base, res.Status)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(body, &s)
}

func runCaller(group *groupcache.Group, peers []string) int {
	client := &http.Client{Timeout: 2 * time.Second}
	// Wait (bounded) for every other node to answer.
	deadline := time.Now().Add(15 * time.Second)
	for _, p := range peers {
		if p == *self {
			continue
		}
		for {
			if _, err := fetchStats(client, p); err == nil {
				break
			} else if time.Now().After(deadline) {
				log.Printf("node %s does not answer: %v", p, err)
				return 1
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// The keys node B owns, by the same ring HTTPPool.Set builds.
	ring := consistenthash.New(replicas, nil)
	ring.Add(peers...)
	keys := make([]string, 0, *keysN)
	for i := 0; len(keys) < *keysN; i++ {
		k := "key:" + strconv.Itoa(i)
		if ring.Get(k) == *owner {
			keys = append(keys, k)
		}
	}

	// Pre-load: every key once through B, 16 at a time.
	{
		var wg sync.WaitGroup
		var failed atomic.Int64
		next := atomic.Int64{}
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var v []byte
				for {
					i := int(next.Add(1) - 1)
					if i >= len(keys) {
						return
					}
					if err := group.Get(context.Background(), keys[i], groupcache.AllocatingByteSliceSink(&v)); err != nil {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() != 0 {
			log.Printf("pre-load: %d gets failed", failed.Load())
			return 1
		}
	}
	if s, err := fetchStats(client, *owner); err == nil {
		fmt.Printf("pre-loaded %d keys owned by %s: its getter ran %d times\n", len(keys), *owner,
			s.SourceCalls)
	}

	status := 0
	for _, field := range strings.Split(*inflight, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 1 {
			log.Printf("-inflight: bad value %q", field)
			return 2
		}
		if !measure(group, client, keys, n) {
			status = 1
		}
	}
	return status
}

func measure(group *groupcache.Group, client *http.Client, keys []string, n int) bool {
	before, err := fetchStats(client, *owner)
	if err != nil {
		log.Printf("stats of %s: %v", *owner, err)
		return false
	}
	aBefore := group.Stats.PeerLoads.Get()
	var measureFrom, measureUntil atomic.Int64
	measureFrom.Store(1<<63 - 1)
	measureUntil.Store(1<<63 - 1)
	var stop atomic.Bool
	var errs atomic.Int64
	lat := make([][]int64, n)
	var wg sync.WaitGroup
	for c := 0; c < n; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(1000 + c)))
			var v []byte
			for !stop.Load() {
				k := keys[rng.Intn(len(keys))]
				t0 := time.Now().UnixNano()
				if err := group.Get(context.Background(), k, groupcache.AllocatingByteSliceSink(&v)); err != nil || len(v) != *valueBytes {
					errs.Add(1)
				}
				t1 := time.Now().UnixNano()
				if t0 >= measureFrom.Load() && t1 <= measureUntil.Load() {
					lat[c] = append(lat[c], t1-t0)
				}
			}
		}(c)
	}
	time.Sleep(time.Duration(*warmup * float64(time.Second)))
	// CPU time in the measured window: node B's process (the server side)
	// and this process (the client side), per request.
	bFrom, errFrom := fetchStats(client, *owner)
	aCPUFrom := processCPU()
	from := time.Now().UnixNano()
	measureFrom.Store(from)
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	until := time.Now().UnixNano()
	measureUntil.Store(until)
	aCPU := processCPU() - aCPUFrom
	bUntil, errUntil := fetchStats(client, *owner)
	stop.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		log.Printf("requests still in flight 15 s after the end")
		return false
	}
	after, err := fetchStats(client, *owner)
	if err != nil {
		log.Printf("stats of %s: %v", *owner, err)
		return false
	}
	var all []int64
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)))
		if i >= len(all) {
			i = len(all) - 1
		}
		return float64(all[i]) / 1000
	}
	secs := float64(until-from) / 1e9
	ops := float64(len(all)) / secs
	serverCPU, clientCPU, serverBusy, clientBusy := 0.0, 0.0, 0.0, 0.0
	if errFrom == nil && errUntil == nil && bUntil.ServerRequests > bFrom.ServerRequests {
		cpu := float64(bUntil.CPUNanos - bFrom.CPUNanos)
		serverCPU = cpu / float64(bUntil.ServerRequests-bFrom.ServerRequests) / 1000
		serverBusy = cpu / float64(until-from)
	}
	if len(all) > 0 {
		clientCPU = float64(aCPU) / float64(len(all)) / 1000
		clientBusy = float64(aCPU) / float64(until-from)
	}
	fmt.Printf("groupcache remote hit, %d in flight: %.0f gets/s, p50 %.1f us, p99 %.1f us "+
		"(B: %d getter calls, %d peer requests; A: %d peer loads, %d errors)\n",
		n, ops, pct(0.50), pct(0.99), after.SourceCalls-before.SourceCalls,
		after.ServerRequests-before.ServerRequests, group.Stats.PeerLoads.Get()-aBefore, errs.Load())
	fmt.Printf("CPU in the measured window: node B %.1f us per request it served (%.0f%% of a core), "+
		"node A %.1f us per get (%.0f%% of a core)\n", serverCPU, 100*serverBusy, clientCPU, 100*clientBusy)
	fmt.Printf("RESULT system=groupcache inflight=%d ops_per_s=%.0f p50_us=%.1f p99_us=%.1f "+
		"p999_us=%.1f errors=%d source_calls=%d server_requests=%d server_cpu_us=%.2f "+
		"client_cpu_us=%.2f server_busy=%.2f client_busy=%.2f\n",
		n, ops, pct(0.50), pct(0.99), pct(0.999), errs.Load(), after.SourceCalls-before.SourceCalls,
		after.ServerRequests-before.ServerRequests, serverCPU, clientCPU, serverBusy, clientBusy)
	return errs.Load() == 0
}
