package hypervisor_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"time"

	"github.com/rein-k8s/rein/samples/vmcontroller/hypervisor"
)

func ExampleClient() {
	dir, err := os.MkdirTemp("", "hypervisor-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	srv, err := hypervisor.NewServer(hypervisor.Config{
		DataDir:       dir,
		Transition:    time.Hour, // keep the example's VM Provisioning
		RefusedImages: []string{"forbidden/"},
		Logger:        quietLogger(),
	})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	ctx := context.Background()
	c := hypervisor.NewClient(hs.URL, nil)
	req := hypervisor.CreateRequest{
		Token: "0b6f3c1e-uid-of-the-virtualmachine", // the VirtualMachine's UID
		Name:  "web-1", CPU: 2, MemoryMiB: 4096, Image: "ubuntu-24.04",
	}
	vm, err := c.Create(ctx, req)
	if err != nil {
		panic(err)
	}
	fmt.Println(vm.ID, vm.State, vm.Power)

	// Retrying the create (a lost answer, a new leader) returns the same VM.
	again, _ := c.Create(ctx, req)
	fmt.Println(again.ID == vm.ID)

	// A controller that lost the ID finds the VM by its token.
	found, _ := c.FindByToken(ctx, req.Token)
	fmt.Println(found.ID)

	req.Token, req.Image = "another-uid", "forbidden/image"
	_, err = c.Create(ctx, req)
	fmt.Println(hypervisor.IsImageRefused(err))

	_ = c.Delete(ctx, vm.ID)
	_, err = c.Get(ctx, vm.ID)
	fmt.Println(hypervisor.IsNotFound(err))

	st, _ := c.Stats(ctx)
	fmt.Printf("%+v\n", *st)
	// Output:
	// vm-000001 Provisioning On
	// true
	// vm-000001
	// true
	// true
	// {VMs:0 Tokens:0 Duplicates:0 Creates:1 Deletes:1 Fencing:{Accepted:0 Refused:0 Unfenced:4 OutOfOrder:0}}
}
