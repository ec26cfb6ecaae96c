// Package e2e holds end-to-end tests of csi-goferfs on a real cluster where
// the chart (charts/csi-goferfs) is installed. They are behind the build tag
// e2e, so `go test ./...` without it needs no cluster:
//
//	go test -tags e2e -count=1 -timeout 30m ./...
//
// hack/e2e-kind.sh creates a kind cluster, installs the chart with
// values-kind.yaml and runs them; hack/local-cluster/e2e.sh does the same
// on a single-node cluster on the machine itself, with values-local.yaml.
// The same tests run against any cluster; what differs comes from the
// environment:
//
//	KUBECONFIG               the cluster (required)
//	E2E_DRIVER_NAMESPACE     namespace of the chart's release (csi-goferfs)
//	E2E_STORAGECLASS_PREFIX  the StorageClasses are PREFIX<mode> (goferfs-)
//	E2E_TEST_IMAGE           image of the workload pods, with sh, cat and
//	                         sync FILE (busybox:1.37)
//	E2E_IMAGE_PULL_POLICY    their pull policy (IfNotPresent)
//	E2E_HOST_NETWORK         "true" runs workload pods with hostNetwork, for
//	                         clusters without a pod network
//	E2E_SHARED_ROOT          "true" when every node's volume root is the same
//	                         directory (kind: one host directory mounted into
//	                         each worker); enables the two-node shared test
//	E2E_TIMEOUT              bound of each wait, as a Go duration (5m)
//	E2E_PROVISIONING         "dynamic": claims are provisioned by the chart's
//	                         csi-provisioner (default); "static": the tests
//	                         call CreateVolume on E2E_CSI_ENDPOINT and bind
//	                         each claim to a PV of their own (static_test.go)
//	E2E_CSI_ENDPOINT         the node plugin's socket, reachable from the test
//	                         process, for static provisioning
//	                         (/var/lib/kubelet/plugins/goferfs.csi.dev/csi.sock)
//	E2E_VOLUME_ROOT          the chart's root value: where the volumes'
//	                         directories are on the nodes
//	                         (/var/lib/csi-goferfs/volumes)
//
// Tests look at the nodes (mounts, remote directories) from privileged pods
// in the node's PID namespace (node_test.go), so they need no access to the
// nodes other than through the cluster.
//
// The tests outside the tag (testdriver_test.go) check the files given to
// the upstream external-storage suite and run everywhere.
package e2e
