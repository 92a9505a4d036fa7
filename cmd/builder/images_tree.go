package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/builderdev/builder/cache"
)

// layerNode is one layer of the tree `images --tree` draws: the layers
// above it in some image are its children, and the images whose top
// layer it is hang from it.
type layerNode struct {
	layer    v1.Descriptor
	children []*layerNode
	images   []treeImage
}

type treeImage struct {
	name string
	id   v1.Hash
}

// child returns the child for layer l, making it on first use.
func (n *layerNode) child(l v1.Descriptor) *layerNode {
	for _, c := range n.children {
		if c.layer.Digest == l.Digest {
			return c
		}
	}
	c := &layerNode{layer: l}
	n.children = append(n.children, c)
	return c
}

// writeImageTree draws the images as a tree of the layers they share,
// each layer with the size it adds (its compressed blob, as SIZE counts
// it): what layering saves is seen at a glance.
func writeImageTree(w io.Writer, store *cache.Store, recs []cache.ImageRecord) error {
	root := &layerNode{}
	for _, rec := range recs {
		info, err := loadImage(store, rec)
		if err != nil {
			return err
		}
		n := root
		for _, l := range info.manifest.Layers {
			n = n.child(l)
		}
		name := rec.Name
		if name == "" {
			name = "<none>"
		}
		n.images = append(n.images, treeImage{name: name, id: rec.ID})
	}
	fmt.Fprintln(w, "scratch")
	drawTree(w, root, "")
	return nil
}

func drawTree(w io.Writer, n *layerNode, indent string) {
	sort.Slice(n.images, func(i, j int) bool { return n.images[i].name < n.images[j].name })
	type item struct {
		text  string
		child *layerNode
	}
	var items []item
	for _, img := range n.images {
		items = append(items, item{text: img.name + "  " + shortID(img.id)})
	}
	for _, c := range n.children {
		items = append(items, item{text: shortID(c.layer.Digest) + "  +" + humanSize(c.layer.Size), child: c})
	}
	for i, it := range items {
		branch, next := "├─ ", "│  "
		if i == len(items)-1 {
			branch, next = "└─ ", "   "
		}
		fmt.Fprintln(w, strings.TrimRight(indent+branch+it.text, " "))
		if it.child != nil {
			drawTree(w, it.child, indent+next)
		}
	}
}
