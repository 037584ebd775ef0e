"""The ground floor: leaves every package may import (errors, durability, time); it imports none of them."""
