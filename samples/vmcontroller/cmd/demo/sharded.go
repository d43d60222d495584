package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rein-k8s/rein/pkg/shard"
	v1alpha1 "github.com/rein-k8s/rein/samples/vmcontroller/api/vm/v1alpha1"
	"github.com/rein-k8s/rein/samples/vmcontroller/internal/lab"
)

// runSharded is the demo with the replicas sharded over n shards.
func runSharded(ctx context.Context, n int) error {
	l, story, closeLab, err := startLab(ctx, false)
	if err != nil {
		return err
	}
	defer closeLab()
	go story.watchShards(ctx, n)

	start := func(i int) (*lab.Process, error) {
		p, err := l.StartReplica(ctx, fmt.Sprintf("replica-%d", i), nil, "--shards", strconv.Itoa(n))
		if err == nil {
			say("started %s (pid %d) with --shards %d: warming its cache, then joining", p.Name, p.Cmd.Process.Pid, n)
		}
		return p, err
	}
	var replicas []*lab.Process
	for i := 1; i <= 3; i++ {
		p, err := start(i)
		if err != nil {
			return err
		}
		replicas = append(replicas, p)
	}
	if err := story.awaitShards(ctx, n, 3, time.Minute); err != nil {
		return err
	}

	say("creating 12 VirtualMachines (web-1..web-12): each is reconciled by the replica holding its shard")
	for i := 1; i <= 12; i++ {
		if err := story.create(ctx, fmt.Sprintf("web-%d", i), "ubuntu-24.04", v1alpha1.PowerOn); err != nil {
			return err
		}
	}
	if err := story.awaitSettled(ctx, 2*time.Minute); err != nil {
		return err
	}
	story.showOwners(ctx, n)

	say(">>> starting replica-4: it gets its share of the shards, handed over by their holders")
	joined := time.Now()
	p, err := start(4)
	if err != nil {
		return err
	}
	replicas = append(replicas, p)
	if err := story.awaitShards(ctx, n, 4, time.Minute); err != nil {
		return err
	}
	say(">>> balanced over 4 replicas %v after replica-4 started (its start and cache sync included)", time.Since(joined).Round(time.Millisecond))

	say(">>> stopping replica-2 with SIGTERM: each of its shards is drained and handed on, then it exits 0")
	termed := time.Now()
	if err := replicas[1].Signal(syscall.SIGTERM); err != nil {
		return err
	}
	code, _ := replicas[1].Wait(30 * time.Second)
	if err := story.awaitShards(ctx, n, 3, time.Minute); err != nil {
		return err
	}
	handoff := time.Since(termed)
	say(">>> replica-2 exited %d; its shards were held by others %v after SIGTERM", code, handoff.Round(time.Millisecond))

	say(">>> killing replica-3 with SIGKILL: its shards move once its member lease expires (2s)")
	killed := time.Now()
	replicas[2].Kill()
	if err := story.awaitShards(ctx, n, 2, time.Minute); err != nil {
		return err
	}
	takeover := time.Since(killed)
	say(">>> replica-3's shards taken over %v after the kill", takeover.Round(time.Millisecond))

	say("powering web-1..web-6 off: the two remaining replicas share the work")
	for i := 1; i <= 6; i++ {
		if err := story.power(ctx, fmt.Sprintf("web-%d", i), v1alpha1.PowerOff); err != nil {
			return err
		}
	}
	if err := story.awaitSettled(ctx, 2*time.Minute); err != nil {
		return err
	}
	story.showOwners(ctx, n)
	return story.summary(ctx, takeover, handoff)
}

// shardHolders returns each shard's holder (the replica's POD_NAME).
func (s *story) shardHolders(ctx context.Context, n int) ([]string, error) {
	list, err := s.l.Admin.CoordinationV1().Leases(lab.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: shard.LabelGroup + "=" + lab.LeaseName + "," + shard.LabelRole + "=shard"})
	if err != nil {
		return nil, err
	}
	out := make([]string, n)
	for _, l := range list.Items {
		for i := range n {
			if l.Name == shard.RecordName(lab.LeaseName, i) && l.Spec.HolderIdentity != nil {
				out[i], _, _ = strings.Cut(*l.Spec.HolderIdentity, "_")
			}
		}
	}
	return out, nil
}

// awaitShards waits until every shard is held, by exactly replicas
// replicas, with counts within one.
func (s *story) awaitShards(ctx context.Context, n, replicas int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		holders, err := s.shardHolders(ctx, n)
		if err == nil {
			counts := map[string]int{}
			for _, h := range holders {
				counts[h]++
			}
			lo, hi := n, 0
			for _, c := range counts {
				lo, hi = min(lo, c), max(hi, c)
			}
			if counts[""] == 0 && len(counts) == replicas && hi-lo <= 1 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("shards not balanced over %d replicas after %v", replicas, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// watchShards prints who holds which shards whenever that changes.
func (s *story) watchShards(ctx context.Context, n int) {
	last := ""
	for ctx.Err() == nil {
		if holders, err := s.shardHolders(ctx, n); err == nil {
			by := map[string][]int{}
			for i, h := range holders {
				if h == "" {
					h = "(nobody)"
				}
				by[h] = append(by[h], i)
			}
			var parts []string
			for h, shards := range by {
				parts = append(parts, fmt.Sprintf("%s %v", h, shards))
			}
			slices.Sort(parts)
			if line := strings.Join(parts, ", "); line != last {
				say("shards: %s", line)
				last = line
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// showOwners prints, per VirtualMachine, its shard and that shard's holder.
func (s *story) showOwners(ctx context.Context, n int) {
	holders, err := s.shardHolders(ctx, n)
	if err != nil {
		return
	}
	list, err := s.vms.List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	var parts []string
	for _, vm := range list.Items {
		sh := shard.Of(vm.Namespace, vm.Name, n)
		parts = append(parts, fmt.Sprintf("%s→shard %d (%s)", vm.Name, sh, holders[sh]))
	}
	say("who reconciles what: %s", strings.Join(parts, ", "))
}
