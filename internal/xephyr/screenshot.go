package xephyr

import (
	"errors"
	"fmt"
	"image"

	"github.com/jezek/xgb"
	"github.com/jezek/xgb/xproto"
)

// Screenshot reads the rectangle (x, y, w, h) of the default screen's root
// window (what the display shows, windows included) with GetImage in
// ZPixmap format and returns it as RGBA with opaque alpha. It supports the
// usual 24/32-bit TrueColor screens (32 bits per pixel, either byte order).
//
// Errors: a non-positive size, an unsupported pixel format, or the
// server's error (BadMatch when the rectangle is outside the screen).
func Screenshot(conn *xgb.Conn, x, y, w, h int) (*image.RGBA, error) {
	if w <= 0 || h <= 0 || w > 32767 || h > 32767 {
		return nil, fmt.Errorf("screenshot: size %dx%d out of range", w, h)
	}
	setup := xproto.Setup(conn)
	if setup == nil || len(setup.Roots) == 0 {
		return nil, errors.New("screenshot: server sent no screens")
	}
	screen := setup.Roots[conn.DefaultScreen]
	depth := screen.RootDepth
	bpp := 0
	for _, f := range setup.PixmapFormats {
		if f.Depth == depth {
			bpp = int(f.BitsPerPixel)
		}
	}
	if (depth != 24 && depth != 32) || bpp != 32 {
		return nil, fmt.Errorf("screenshot: unsupported root format depth %d, %d bits per pixel (need 24 or 32 bit depth at 32 bpp)", depth, bpp)
	}
	rep, err := xproto.GetImage(conn, xproto.ImageFormatZPixmap, xproto.Drawable(screen.Root),
		int16(x), int16(y), uint16(w), uint16(h), 0xffffffff).Reply()
	if err != nil {
		return nil, fmt.Errorf("screenshot %dx%d+%d+%d: %w", w, h, x, y, err)
	}
	if len(rep.Data) < w*h*4 {
		return nil, fmt.Errorf("screenshot: got %d bytes, want %d", len(rep.Data), w*h*4)
	}
	msb := setup.ImageByteOrder == xproto.ImageOrderMSBFirst
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < w*h; i++ {
		p := rep.Data[i*4 : i*4+4]
		o := img.Pix[i*4 : i*4+4]
		if msb { // X R G B
			o[0], o[1], o[2] = p[1], p[2], p[3]
		} else { // B G R X
			o[0], o[1], o[2] = p[2], p[1], p[0]
		}
		o[3] = 0xff
	}
	return img, nil
}
