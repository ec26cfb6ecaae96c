package ninep_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/csi-goferfs/csi-goferfs/backend/local"
	"github.com/csi-goferfs/csi-goferfs/backend/ninep"
)

// pki writes a CA and certificates it signed into dir.
type pki struct {
	dir  string
	ca   *x509.Certificate
	key  *ecdsa.PrivateKey
	next int64
}

func newPKI(t *testing.T, name string) *pki {
	p := &pki{dir: t.TempDir(), next: 2}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.key = key
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

// issue writes name.pem and name.key, valid for 127.0.0.1.
func (p *pki) issue(t *testing.T, name string, usage x509.ExtKeyUsage) (cert, key string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.next++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.next), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &k.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(p.dir, name+".pem"), filepath.Join(p.dir, name+".key")
	writePEM(t, cert, "CERTIFICATE", der)
	writePEM(t, key, "EC PRIVATE KEY", kder)
	return cert, key
}

func writePEM(t *testing.T, name, typ string, der []byte) {
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSClientCertificates: the gofer with TLS serves a client with a
// certificate of its CA, and refuses one without a certificate, one
// with a certificate of another CA, and a plain TCP client.
func TestTLSClientCertificates(t *testing.T) {
	good, other := newPKI(t, "cluster CA"), newPKI(t, "someone else")
	srvCert, srvKey := good.issue(t, "gofer", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := good.issue(t, "node", x509.ExtKeyUsageClientAuth)
	badCert, badKey := other.issue(t, "intruder", x509.ExtKeyUsageClientAuth)
	caFile := filepath.Join(good.dir, "ca.pem")

	srvTLS, err := ninep.ServerTLS(srvCert, srvKey, caFile)
	if err != nil {
		t.Fatal(err)
	}
	root, err := local.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); ninep.NewServer(root).Serve(ctx, l, srvTLS) }()
	defer func() { cancel(); <-done }()
	addr := l.Addr().String()

	dial := func(cfg ninep.Config) error {
		cfg.Server, cfg.Export, cfg.Timeout = addr, "/", 2*time.Second
		fsys, err := ninep.Dial(context.Background(), cfg)
		if err == nil {
			_, err = fsys.Lstat("")
			fsys.Close()
		}
		return err
	}
	okTLS, err := ninep.ClientTLS(cliCert, cliKey, caFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(ninep.Config{TLS: okTLS}); err != nil {
		t.Fatalf("client with a certificate of the CA: %v", err)
	}
	badTLS, err := ninep.ClientTLS(badCert, badKey, caFile, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	noCert := okTLS.Clone()
	noCert.Certificates = nil
	for name, cfg := range map[string]ninep.Config{
		"certificate of another CA": {TLS: badTLS},
		"no client certificate":     {TLS: noCert},
		"plain TCP":                 {},
	} {
		if err := dial(cfg); err == nil {
			t.Errorf("%s: the gofer served it", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	if _, err := ninep.ServerTLS(srvCert, srvKey, ""); err == nil {
		t.Error("ServerTLS without a client CA succeeded")
	}
}
